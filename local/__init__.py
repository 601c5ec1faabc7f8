"""The local stack: the service's own handlers, ASL and data code on emulated AWS, with no Docker
and no AWS account. ``python -m local`` serves it (see :mod:`local.stack`); :mod:`local.emulator`
holds what moto needed added or fixed to behave as AWS documents.
"""
