"""Research drivers kept apart from the library: the linear-network toy (``memsinks theory``)."""
