"""What a conditional model conditions on (``condition=label``: the class label)."""
