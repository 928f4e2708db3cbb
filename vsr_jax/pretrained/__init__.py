"""Published weight files (BasicSR, Real-ESRGAN, MMagic) in our models: reading PyTorch
state_dicts into Flax parameter trees, one to one.

Our ports of published architectures name their submodules as the authors' PyTorch modules
do (``body.0.conv1`` → ``body_0/conv1``), so one generic rule (`convert.state_dict_to_params`)
maps every key; the layouts differ only in the weight axes (OIHW → HWIO).
This package never imports torch at module level and never the training code.
"""
