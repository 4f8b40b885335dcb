"""syncd's built-in adapters, registered through the `syncd` entry-point group like any plugin."""
