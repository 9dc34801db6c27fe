"""Training: optimizers, update policies at work, trainers and the streaming loop."""
