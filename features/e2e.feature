@e2e
Feature: End to end - a Colab-like client's snapshot lands everywhere it should
  A real NVIDIA H200 snapshot, posted the way the Colab notebook posts it, is acknowledged
  by the API, consumed by the worker, logged, stored, archived and counted on the dashboard.

  Background:
    Given the pipeline target
    And a real H200 snapshot from a Colab-like client
    And the pipeline's counters before the post

  Scenario: A posted snapshot is stored, logged and counted
    When the client posts the snapshot to the Processor API
    Then the API answers 202 with the snapshot's event id
    And the worker's consumer group moves past the snapshot's offset
    And a worker log line carries the event id
    And the document is retrievable by its event id
    And the dashboard's processed-events metric has increased

  Scenario: A posted snapshot is archived to S3 when archiving is on
    Given archiving is on for the target
    When the client posts the snapshot to the Processor API
    Then the API answers 202 with the snapshot's event id
    And the archive object holding the snapshot exists

  Scenario: The producer client replays the H200 captures through the Processor API
    When the producer client replays the H200 captures to the Processor API
    Then each of the client's requests was answered 202
    And every event the client sent is stored

  Scenario: The Colab notebook, run headlessly in replay mode, posts through the Processor API
    When the Colab notebook runs headlessly in replay mode against the Processor API
    Then each of the client's requests was answered 202
    And every event the client sent is stored
