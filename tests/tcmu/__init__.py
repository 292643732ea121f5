"""TCMU ring and handler tests, run against a fake target_core_user (fake_kernel)."""
