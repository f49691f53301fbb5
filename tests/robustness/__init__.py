"""What protects users from bad input, one concern per module.

``test_not_files``: what is no regular file, or not ours (a FIFO, a folder, a STAR
file renamed ``.mrc``), ends in one message at once, never a hang. ``test_damaged``:
damaged files of every kind raise one MRCZFormatError naming the file, never a crash
or a huge allocation (also under a capped address space). ``test_fuzzed``: random
damage (header fields, cuts, flipped bytes) on our files and real ones is read or
refused, nothing else.
"""
