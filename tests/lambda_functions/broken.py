"""A module that cannot be imported: the runtime must report an init error."""

raise ImportError("this module is broken on purpose")
