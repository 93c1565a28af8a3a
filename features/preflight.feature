@preflight
Feature: Preflight - every component the pipeline needs is up and ready
  Before any data flows, a platform engineer checks that each part of CA4 answers.
  Run it with `make ca4-verify-preflight` (live) or `make local-verify` (local stack).

  Scenario Outline: The <component> is up and ready
    Given the pipeline target
    When I probe the component "<component>"
    Then the component reports ready

    Examples:
      | component       |
      | kafka           |
      | database        |
      | processor-api   |
      | metadata-worker |
      | prometheus      |
      | s3-archive      |

  @cluster
  Scenario: Every Kubernetes node is Ready
    Given the pipeline target
    When I list the Kubernetes nodes
    Then there is at least one node
    And every node reports Ready

  @cluster
  Scenario Outline: Every pod in namespace <namespace> is running and ready
    Given the pipeline target
    When I list the pods of namespace "<namespace>"
    Then there is at least one pod
    And every pod is running and ready

    Examples:
      | namespace  |
      | platform   |
      | app        |
      | monitoring |

  @cluster
  Scenario: Prometheus scrapes the services and every node's cAdvisor
    Given the pipeline target
    When I list the targets Prometheus scrapes
    Then every instance of the jobs "processor-api, metadata-worker" is up
    And every node has a cAdvisor target that is up

  @cluster
  Scenario: The dashboards' container and node panels return data
    Given the pipeline target
    When I run the queries of the dashboard panels that read cAdvisor
    Then every one of them returns data
