"""``make cost``: the AWS cost of typical runs, modelled from what a real local run counts.

- :mod:`tests.cost.prices`: the one price table (us-east-1, dated, each price with its source);
- :mod:`tests.cost.model`: the template's function configuration and the arithmetic, counts to dollars;
- :mod:`tests.cost.scenarios`: the runs, driven through the openai SDK against the local stack
  with ``LOCAL_METER=1`` (:mod:`local.meter`), and what each counted;
- ``python -m tests.cost``: runs them and prints the report.
"""
