"""Building blocks shared by every app: the layer below accounts, credits, payments and generations."""
