"""Nightly and bulk jobs: seeding users, clustering, generating pools."""
