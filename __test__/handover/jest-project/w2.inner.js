'use strict'
// Inner jest file 2 of 4 (see body.js); the clients work for different times, so they leave one by one.
require('./body')('w2', 2000)
