"""A toy method family, as a plug-in would add one: one config file and one backend file."""
