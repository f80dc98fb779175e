create database orders;
create database inventory;
create database payments;
create database shipping;
create database registry;
create database views;
