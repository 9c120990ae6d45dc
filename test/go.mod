module github.com/kvconf/kvconf/test

go 1.26.8

replace github.com/kvconf/kvconf => ../
