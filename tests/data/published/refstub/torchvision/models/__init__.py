from . import vgg  # noqa
