"""The commands around ``pulumi up`` (``python -m desktop <command>``).

They use boto3 and the stack files, never the Pulumi component, so that a program
importing :mod:`desktop` as a library loads none of this. One module per command or
family; :mod:`desktop.commands.aws` is the one boto3 session they share, and
:mod:`desktop.commands.cli` the parser that ties them together.
"""
