"""The checkpoint machinery: a checkpoint directory's files, the checks it must pass, its weights read and written.

`files` reads a directory without torch (the registry lists models with it alone);
`weights` builds a family's network and reads the weights in (or writes them);
`checks` refuses a config or a loaded model that would answer garbage.
"""
