"""Every scenario of features/*.feature, bound to the steps in tests/bdd/steps."""

from pytest_bdd import scenarios

scenarios("../../features")
