"""
The library beneath the scripts, in the book's own folder name: the layers (time_layers), the
models (models), the optimizers (optimizer), text and vocabularies (vocabulary), checkpoint files
(checkpoint), one interface to every checkpoint kind (interface), the run contract both trainers
share (training), sampling helpers both model kinds use (generation) and command-line plumbing (cli).
"""
