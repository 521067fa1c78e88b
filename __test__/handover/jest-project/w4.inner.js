'use strict'
// Inner jest file 4 of 4 (see body.js); the clients work for different times, so they leave one by one.
require('./body')('w4', 2800)
