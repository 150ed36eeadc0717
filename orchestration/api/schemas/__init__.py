"""The HTTP API's request and response models, one module per resource; ``common`` holds the error
body and the run descriptor that several resources answer with."""
