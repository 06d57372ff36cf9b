"""What a host holds, read and written over SSH: paths, generations, deploy lock and log, sites manifest."""
