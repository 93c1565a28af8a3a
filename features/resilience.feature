@resilience
Feature: Resilience - a Kafka broker lost under load loses nothing
  A platform engineer deletes one Kafka broker's pod while a client posts snapshots through
  the public endpoint, as a node failure or a rollout would. The client retries what the API
  refuses, as the producer client does; nothing acknowledged may be lost or stored twice.
  Run it with `make ca4-verify-resilience` (live; it deletes a broker pod).

  @cluster
  Scenario: A broker pod deleted during a load of 1 000 snapshots
    Given the pipeline target
    When 1000 snapshots are posted through the public endpoint while a Kafka broker pod is deleted
    Then the deleted broker came back and every partition has all its replicas in sync
    And the client got every snapshot acknowledged, retrying what was refused
    And every snapshot is stored exactly once
