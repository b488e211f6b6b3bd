"""dex-age's serving half: a FastAPI app that loads a model directory and estimates ages."""
