"""What every room may use: argument checks with one message style (``checks``)."""
