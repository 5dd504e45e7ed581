console.log("console.js got called");
