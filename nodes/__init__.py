"""Built-in node types. Each module is one stage; every ``@node`` function in it is registered."""
