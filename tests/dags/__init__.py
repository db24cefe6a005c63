"""DAG files the tests run with dag.test(); they form the ``test-dags`` bundle (see tests/conftest.py)."""
