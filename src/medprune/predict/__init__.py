"""``python -m medprune.predict``: run a trained model on your own tiles or volumes
(``__main__``; the work is done by ``medprune.inference.predict``)."""
