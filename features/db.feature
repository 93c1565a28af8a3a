@db
Feature: Database - documents are written and read back through the in-cluster path
  Live, the check runs in a short-lived toolbox Job in namespace app, with the worker's
  own credentials: the laptop never connects to DocumentDB. Locally it talks to FerretDB.

  Background:
    Given the pipeline target

  Scenario: A document inserted through the in-cluster path can be read back
    When I insert a verification document through the in-cluster path
    Then the same document is read back
    And the verification document is removed afterwards

  Scenario: The pipeline's collections exist
    When I list the collections through the in-cluster path
    Then the collection "gpu_metadata" exists
    And the collection "gpu_devices" exists
