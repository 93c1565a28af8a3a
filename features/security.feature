@security
Feature: Security - no token, no entry; bad input refused by name; internals stay private

  Background:
    Given the pipeline target
    And a real H200 snapshot from a Colab-like client

  Scenario: A request without a token is refused with 401
    When the client posts the snapshot without a token
    Then the API answers 401

  Scenario: A request with a wrong token is refused with 401
    When the client posts the snapshot with the token "not-a-valid-token-for-ca4"
    Then the API answers 401

  Scenario: An invalid snapshot is refused with 422 naming the field
    When the client posts the snapshot with "accelerators[0].utilization_gpu_pct" set to 140
    Then the API answers 422
    And the error names the field "accelerators[0].utilization_gpu_pct"

  Scenario: The API exposes only its documented routes
    When I read the API's OpenAPI document
    Then its paths are exactly "/metadata, /healthz, /readyz, /metrics"

  Scenario: The Processor API holds no database credentials
    When I read the Processor API's environment
    Then it has no variable "MONGO_URI"

  Scenario Outline: Port <port> is not reachable at the API's public address
    When I connect to the API's public host on port <port>
    Then the connection is refused or times out

    Examples:
      | port  |
      | 9092  |
      | 9093  |
      | 27017 |
