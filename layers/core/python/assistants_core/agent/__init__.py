"""One model turn of a run, as the agent-step Lambda performs it.

This is the only package that calls a model: litellm (and tiktoken) are imported here, inside
functions, so the other functions never pay for them.
"""
