'use strict'
// Inner jest file 3 of 4 (see body.js); the clients work for different times, so they leave one by one.
require('./body')('w3', 2400)
