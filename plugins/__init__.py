"""ganzoo's built-in architectures. Each subpackage is a plugin registered through the
"ganzoo" entry-point group, exactly as a third-party package would register one."""
