"""The code_interpreter tool: the model writes Python, a sandbox runs it between two turns.

- :mod:`.tool`: what the model is offered (a ``python`` function) and how calls are recorded;
- :mod:`.calls`: the run state machine's RunCode task, which runs a turn's calls;
- :mod:`.sandbox`: the AgentCore Code Interpreter adapter (the same code on AWS and locally);
- :mod:`.runner`: the helper installed in each session (notebook habits, time limit, outputs);
- :mod:`.sessions`: a thread's session, kept on the thread;
- :mod:`.files`: files in and out of ``/mnt/data``.
"""
