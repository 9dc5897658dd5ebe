"""Integer codes shared with the C++ core (csrc/walkback/common.h): keep the two in step."""

CORRUPTION_NONE = 0
CORRUPTION_SALT_AND_PEPPER = 1
CORRUPTION_MASKING = 2
CORRUPTION_GAUSSIAN = 3
CORRUPTION_BIT_FLIP = 4

ACTIVATIONS = {"sigmoid": 0, "tanh": 1, "relu": 2, "identity": 3, "leaky_relu": 4}
RECONSTRUCTIONS = {"bernoulli": 0, "gaussian": 1, "categorical": 2}

STREAMS = {"corrupt": 0, "sample": 1, "init": 2, "user": 3, "corrupt_normal": 4, "sample_normal": 5}
STREAM_HIDDEN = 16  # GSN hidden noise: 16 + 2 (l - 1) before the activation, + 1 after
