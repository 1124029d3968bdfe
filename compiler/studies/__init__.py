"""Published experiments pimc reproduces, each defined once for its bench script, example and tests."""
