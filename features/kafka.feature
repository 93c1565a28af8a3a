@kafka
Feature: Kafka - the topics exist as designed and carry records
  The event topic and its dead-letter topic exist with the partitions and replication
  the design asks for, and a record written to the topic can be read back.

  Background:
    Given the pipeline target

  Scenario: The topic gpu-metadata has the expected partitions
    When I describe the topic "gpu-metadata"
    Then the topic has the expected number of partitions

  Scenario: Every partition of gpu-metadata has the expected replication
    When I describe the topic "gpu-metadata"
    Then every partition has the expected replication factor

  Scenario: Every partition of gpu-metadata has all its replicas in sync
    When I describe the topic "gpu-metadata"
    Then no partition is under-replicated

  Scenario: The dead-letter topic gpu-metadata.dlq exists
    When I describe the topic "gpu-metadata.dlq"
    Then the topic exists

  Scenario: A record produced to gpu-metadata can be consumed back from its offset
    Given a real H200 snapshot from a Colab-like client
    When I produce a verification event to "gpu-metadata"
    Then I read the same record back from its partition and offset
