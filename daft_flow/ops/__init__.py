"""Op specifications: what each op is, independent of how it runs."""
