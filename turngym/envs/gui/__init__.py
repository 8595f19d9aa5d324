"""GUI navigation: procedurally generated apps rendered as accessibility trees."""
