package lakelib

// SetCompletedHook sets testHookCompleted for the tests in lakelib_test;
// call it before dialling and reset it (nil) after every client closed.
func SetCompletedHook(f func()) { testHookCompleted = f }
