"""pytest hooks: a thin layer over the library (being written by the plugin owner)."""
