// Package runlock keeps two experiment runs out of one output folder. A
// run holds an exclusive flock(2) on DIR/.lock while it works, and writes
// its pid, host and start time there so that a second run can say who
// holds the folder. The kernel drops the lock when its holder exits, however
// it exits, so a lock left by a killed run holds nothing: the next run takes
// it without any staleness test.
package runlock
