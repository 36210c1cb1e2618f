"""The driver SDK: the conformance contract every driver must meet, and the skeleton generator.

``contract.DriverContract`` is the one suite of checks that a driver passes against its emulator
(with the wire observed through an ``probe.EmulatorProbe``) or against hardware; ``plugin`` makes
it a pytest plugin with ``--sessionlog-driver``/``--sessionlog-url``/``--sessionlog-hardware``; and
``skeleton`` writes a new driver package that passes the contract as generated. Nothing here is
imported by the service at run time, and only ``contract``, ``selected`` and ``plugin`` need pytest.
"""
