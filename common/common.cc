// Placeholder translation unit so the library has a source while components land.
