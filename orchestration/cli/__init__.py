"""The ``campaignflow`` command. Each module holds one command group; ``main`` assembles them."""
