"""The agent's endpoint sensors (Linux): kernel sources turned into catalogue events.

- :mod:`.base`: the :class:`~.base.Sensor` interface, its status and counters;
- :mod:`.ratelimit`: the per-sensor token bucket;
- :mod:`.emitter`: the bounded queue and the thread that writes events into the spool;
- :mod:`.runner`: what ``garrison-agent run`` starts, and the ``sensor_health`` event;
- :mod:`.procconn`: the kernel process connector (netlink), struct layouts and socket;
- :mod:`.procinfo`: reading ``/proc``: UniquePID, command line, environment, user;
- :mod:`.hashes`: the file-hash cache and its bounded background worker;
- :mod:`.process`: the process sensor (``process_started``, ``process_stopped``);
- :mod:`.fanotify`, :mod:`.files`: fanotify through ctypes, the file sensor (``file_created``);
- :mod:`.drivers`: the driver sensor (``driver_loaded``, ``/proc/modules``);
- :mod:`.modules`: the module sensor (``module_loaded``, libraries mapped after exec).
- :mod:`.sockdiag`, :mod:`.ports`: NETLINK_SOCK_DIAG and the listening-port sensor;
- :mod:`.authparse`, :mod:`.oslog`: sshd/su/sudo lines and the OS-log sensor;
- :mod:`.utmp`: utmp records and the terminal-session sensor.

A new sensor is a :class:`~.base.Sensor` subclass and one entry in ``runner.FACTORIES``.
"""
