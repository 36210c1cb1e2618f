"""Infrastructure every in-process device emulator shares: the clock it runs on (`clock`), the
device-to-host byte path with its link faults and unplug behaviour (`device`), the thread that
advances it in real time (`runner`), the pyserial port whose far end it is (`serial_port`) and the
parsing of the URL query options that configure it (`options`). A driver package supplies only its
firmware state machine and its settings; the way an emulator is reached stays the same for all.
"""
