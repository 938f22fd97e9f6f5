"""Layers the lecture names that Keras does not ship (keras + keras.ops only)."""
