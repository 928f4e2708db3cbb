"""The streaming upscaler (`vsr-upscale`): `engine` cuts a video for a model (chunks with
carried recurrent state, overlapping windows, tiles), `job` runs decode → model → encode
as a resumable pipeline, `__main__` is the command line, `bench` its benchmark. Nothing
here imports TensorFlow or the training code."""
