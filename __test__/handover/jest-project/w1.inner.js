'use strict'
// Inner jest file 1 of 4 (see body.js); the clients work for different times, so they leave one by one.
require('./body')('w1', 1600)
