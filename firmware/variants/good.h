/* good: everything right. The defaults in include/lhv/config.h are this build. */
