"""Tests of the production profile on the real local PostgreSQL and Redis."""
