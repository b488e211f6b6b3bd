"""What the tests and the measuring scripts share: a real service on a loopback port and a load on
it, hostile inputs, a headless Chromium, the benchmark photos."""
