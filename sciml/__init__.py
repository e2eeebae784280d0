"""sciml: the front end. numpy-like API (sciml.numpy), transforms, jit, equations, solve, nn."""
